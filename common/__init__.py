"""Small pieces every component shares (the config-to-command-line mechanism)."""

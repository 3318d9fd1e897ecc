"""The event contract: schema, validator and partitioning shared by every component."""

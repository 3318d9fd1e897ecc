"""The event contract: schema, validator and partitioning shared by every component."""

from events import native

native.install()  # before any compiled module is imported: it may pick their Python source

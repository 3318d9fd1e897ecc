"""Kafka plumbing: the embedded Tansu broker, topic management, a console consumer."""

"""Kafka: reading a key's records back (the log pipeline's view); no consumer group, explicit positions."""

from integrations.kafka.client import KafkaReader, NewRecords, Record, WindowRead

__all__ = ["KafkaReader", "NewRecords", "Record", "WindowRead"]

"""Drivers: one async facade per tool kind over serial, Modbus or MQTT, driven by protocol profiles."""

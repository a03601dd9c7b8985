"""Transports: serial (pyserial-asyncio-fast), Modbus TCP/RTU (pymodbus), MQTT (aiomqtt)."""

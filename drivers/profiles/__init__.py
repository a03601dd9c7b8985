"""Protocol profiles: a tool kind's variables and commands mapped onto one transport, as data."""

from drivers.profiles.base import CONTRACT_ENUMS, ProfileBase, Value
from drivers.profiles.hsms import HsmsCommand, HsmsEvent, HsmsProfile, HsmsVariable
from drivers.profiles.loader import PROFILE_DIR, load_profile, parse_profile
from drivers.profiles.modbus import ModbusCommand, ModbusProfile, ModbusVariable
from drivers.profiles.mqtt import MqttCommand, MqttProfile, MqttTopics, MqttVariable
from drivers.profiles.serial import SerialCommand, SerialProfile, SerialQuery, SerialVariable

Profile = ModbusProfile | SerialProfile | MqttProfile | HsmsProfile

__all__ = [
    "CONTRACT_ENUMS",
    "PROFILE_DIR",
    "HsmsCommand",
    "HsmsEvent",
    "HsmsProfile",
    "HsmsVariable",
    "ModbusCommand",
    "ModbusProfile",
    "ModbusVariable",
    "MqttCommand",
    "MqttProfile",
    "MqttTopics",
    "MqttVariable",
    "Profile",
    "ProfileBase",
    "SerialCommand",
    "SerialProfile",
    "SerialQuery",
    "SerialVariable",
    "Value",
    "load_profile",
    "parse_profile",
]

"""Declarative device and site profiles (YAML), validated, and the command frames that apply them."""

from firmware_configs.profile import GatewayProfile, load_profile, validate_file

__all__ = ["GatewayProfile", "load_profile", "validate_file"]

"""Promotion: contenders scored on one shared set, the gate's rules, and the alias moved only when MLFlask serves
the version. It sits above the registry and serving, and uses both."""

"""The protocols of tools people already use, spoken by dphub over its own services."""

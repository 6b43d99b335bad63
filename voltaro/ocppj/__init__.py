"""OCPP-J 1.6: framing, error codes and schema validation (sans-io), plus the trio RPC endpoint."""

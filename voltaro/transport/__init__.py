"""The OCPP WebSocket server: handshake, connection registry, keepalive."""

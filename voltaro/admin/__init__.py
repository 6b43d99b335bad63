"""The admin HTTP API (Quart-trio on Hypercorn): resources, operator commands, the OpenAPI
document and its docs page, health and Prometheus metrics. See ``voltaro.admin.server``."""

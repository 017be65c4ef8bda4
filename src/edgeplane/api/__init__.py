"""The REST API: FastAPI routers over the services, problem+json errors."""

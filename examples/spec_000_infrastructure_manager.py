"""The usage guide of the Infrastructure Manager specification, as written (only the import
line changed). Needs server ``server-123`` to exist."""

from edgeplane import InfrastructureManager, ServerType, RegionType
import asyncio

# Initialize infrastructure manager
manager = InfrastructureManager()

# Create server
async def create_server():
    server = await manager.create_server(
        name="US East Primary",
        type=ServerType.PRIMARY,
        region=RegionType.AMERICAS,
        location="us-east",
        capacity={
            "cpu": 80.0,
            "memory": 160.0,
            "storage": 1000.0
        }
    )
    print(f"Server created: {server.id}")

asyncio.run(create_server())

# Create service
async def create_service():
    service = await manager.create_service(
        server_id="server-123",
        type="cdn",
        settings={
            "provider": "cloudflare",
            "zone": "us-east",
            "caching": "aggressive"
        }
    )
    print(f"Service created: {service.id}")

asyncio.run(create_service())

# Route request
async def route_request():
    server = await manager.route_request(
        client_ip="1.2.3.4",
        service_type="cdn"
    )
    print(f"Routed to server: {server.id}")

asyncio.run(route_request())

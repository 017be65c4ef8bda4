"""The usage guide of the Global Operations specification, as written (only the import line
changed). Needs servers ``endpoint1`` and ``endpoint2`` and data centers ``dc-na-1`` and
``dc-na-2`` to exist."""

from edgeplane import GlobalOperations, RegionCode, DataCenterTier
import asyncio

# Initialize operations
ops = GlobalOperations()

# Create data center
async def create_dc():
    dc = await ops.create_data_center(
        name="NA Primary",
        region=RegionCode.NA,
        location="us-east",
        tier=DataCenterTier.TIER_3,
        capacity={
            "cpu": 1000,
            "memory": 4000,
            "storage": 10000
        }
    )
    print(f"Data center created: {dc.id}")

asyncio.run(create_dc())

# Create load balancer
async def create_lb():
    lb = await ops.create_load_balancer(
        name="NA Load Balancer",
        type="round_robin",
        region=RegionCode.NA,
        endpoints=[
            "endpoint1",
            "endpoint2"
        ]
    )
    print(f"Load balancer created: {lb.id}")

asyncio.run(create_lb())

# Create DR config
async def create_dr():
    dr = await ops.create_dr_config(
        name="NA DR Config",
        primary_dc="dc-na-1",
        backup_dc="dc-na-2",
        rpo=15,
        rto=60
    )
    print(f"DR config created: {dr.id}")

asyncio.run(create_dr())

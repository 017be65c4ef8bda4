"""Auto-scaling: scaling groups that back a load balancer's pool with instances made and
removed by a provider driver (``edgeplane.scaling.drivers``), on the metrics of the monitoring
series, through the flow of spec 002 (monitor -> trigger -> provision -> update the load
balancer -> verify)."""

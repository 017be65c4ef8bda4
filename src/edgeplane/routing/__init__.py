"""Global routing: client geolocation and distance-based edge selection."""

"""Network pieces (imports torch; geosr imports this lazily)."""

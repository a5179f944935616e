"""DynamoDB through pynamodb. Models stay behind this package's functions."""

"""Pure rules of the platform: no boto3, no environment, no sockets."""

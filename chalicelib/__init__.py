"""Code shipped to Lambda: domain rules, DynamoDB store, adapters, web handlers."""

"""Deploy-time custom resource that creates each tenant's OpenSearch index (standard library + boto3 only)."""

"""AWS Lambda handlers. Each is packaged on its own by the CDK stacks; this file lets tests import them."""

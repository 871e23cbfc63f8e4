"""CareQA: grounded, cited answers from a tenant's knowledge base for customer-care agents."""

__version__ = "0.1.0"

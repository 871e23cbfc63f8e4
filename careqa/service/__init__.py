"""The agent-assist HTTP service: JSON API, agent web page and source documents."""

"""Chunk indexes: one interface, an embedded driver (LanceDB) and, on AWS, OpenSearch."""

from careqa.index.base import ChunkIndex, DocState

__all__ = ["ChunkIndex", "DocState"]

"""What lives in S3: the job record, audio objects, the voice library layout."""

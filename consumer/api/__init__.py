"""The HTTP door (`f5-worker api`): an OpenAI-compatible speech endpoint, jobs and voices over HTTP, and a web
console. Stateless: requests become SQS messages with the same contracts, job state is read from the job records
in S3, voices live in the S3 voice library. No torch, no GPU."""

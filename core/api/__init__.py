"""REST API blueprints (batch submission, job status, queue).  See issue #3."""

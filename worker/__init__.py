"""The consumer side: drain a route's stream and execute its jobs.

``consumer`` is the runtime (consumer group, concurrency, recording outcomes);
what a job *does* is an executor: ``relay`` calls an unchanged HTTP service
(the sidecar), ``handler`` calls a Python function in the same process. Both
return a ``Reply`` (a definitive answer) or a ``Failure`` (retryable or not).
"""

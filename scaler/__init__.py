"""The scaler: the controller that sizes each route's workers to its backlog.

Not built yet: it samples lag and arrival/drain rates from Redis (through
``tidegate.backlog``) and scales worker Deployments through the Kubernetes
scale subresource. Like the gateway and the worker, it imports only
``tidegate`` and meets the other parts in Redis.
"""

"""The domain: read mParticle batches, map them to Facebook offline conversions, deliver them.

Knows nothing about API Gateway; `handler/` adapts HTTP to it.
"""

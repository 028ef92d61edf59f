"""What a running process tells its operator: logs and Prometheus metrics.

It sits beside the settings, outside the wings, because the story side, the queue and
the model worker all report to it; it imports none of them.
"""

"""The names of the scaling policies: POLICY's choices (autoscaler/config.py) and the local stack's --policy.

A module of its own so that the settings can list the names without importing the policies, which import
the settings. autoscaler/policies.py registers one policy under each name (a test holds the two together).
"""

POLICY_NAMES = ("slo", "hpa", "kpa", "static")

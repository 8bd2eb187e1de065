"""Building the two container images: the pinned versions they ship (`lock`), the build context for a build
without downloads (`context`), the container engine (`engine`), and `python -m containers` (make images)."""

"""The shared core: what the inference service and the pipeline both import (serving requirements only)."""

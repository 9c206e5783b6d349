"""REST routes, one module per resource; each exposes ``router`` (an APIRouter), mounted under ``/api/v1``."""

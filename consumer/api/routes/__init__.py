"""The API's routes by area, one `APIRouter` each; `create_app` includes them in this order."""

"""The scene editor: a local web app over the library (``sisgen edit``)."""

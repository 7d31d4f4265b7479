"""The activity stream: what happened to packages, newest first, and the webhooks told of it."""

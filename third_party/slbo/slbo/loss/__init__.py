"""Port of upstream ``slbo/loss``; criteria are ``lunzi.nn.loss``'s (see :mod:`.criteria`)."""

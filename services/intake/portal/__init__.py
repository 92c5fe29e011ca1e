"""The citizen web portal: pages (http), form reading and checks (forms), templates (render)."""

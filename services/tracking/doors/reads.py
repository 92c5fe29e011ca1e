"""What every door of tracking reads through: the views, once they hold the latest writes."""

from __future__ import annotations

from typing import Any

from shared.chassis.auth import WorkerAuth

from ..dependencies import Tracking
from ..read.projection import ReportProjector


class ReportReads:
    """The read helpers the doors share. The dependencies are TrackingService's: annotated here,
    never assigned, so that nameko does not take them for providers of the mixin."""

    tracking: Tracking
    auth: WorkerAuth

    def _caught_up(self) -> ReportProjector:
        """The projector, once it holds what was saved a moment ago (read your own writes); it
        waits at most READ_WAIT_SECONDS and never writes."""
        return self.tracking.fresh_views()

    def _view(self, folio: str, access_token: str | None, staff: bool) -> dict[str, Any] | None:
        if access_token and not self.tracking.app.check_access_token(folio, access_token):
            raise PermissionError("the access token does not open this report")
        projector = self.tracking.fresh_views()  # a command may have landed a moment ago
        read = projector.private_view if access_token else projector.public_view
        return read(folio)

"""After the live: live data and the post-live report, room lifecycle webhooks
(room.live with reservations, room.ended, followup), reservations and the archive."""

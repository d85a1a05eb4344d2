from django.core.management.base import CommandError

from apps.alerts.services import rotate_channel_secrets
from apps.core.management.base import SystemCommand
from apps.drills.services import reencrypt_dsns
from apps.privacy.datamap import reencrypt_secrets as reencrypt_privacy_secrets
from opsportal.crypto import InvalidToken


class Command(SystemCommand):
    help = (
        "Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS. Put the new "
        "key first, keep the old ones after it, run this, then drop the old keys."
    )

    def handle(self, *args, **options):
        try:
            count = rotate_channel_secrets()
            dsns = reencrypt_dsns()
            privacy = reencrypt_privacy_secrets()
        except InvalidToken as exc:
            raise CommandError(
                "A stored secret cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS; "
                "add the key it was written with (after the new one) and run again."
            ) from exc
        self.stdout.write(
            f"re-encrypted {count} channel secret(s), {dsns} drill DSN(s) and {privacy} privacy "
            "source secret(s) with the current key"
        )

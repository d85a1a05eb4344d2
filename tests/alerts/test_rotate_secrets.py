from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.test import override_settings

from apps.alerts.models import Channel
from apps.alerts.services import save_channel
from opsportal import crypto
from tests.alerts.conftest import ROUTING_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_keys():
    crypto._fernet.cache_clear()
    yield
    crypto._fernet.cache_clear()


def test_rotation_re_encrypts_with_the_new_key_so_the_old_one_can_go(tenant):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        crypto._fernet.cache_clear()
        save_channel(Channel(tenant=tenant, name="pd", kind="pagerduty"), secret=ROUTING_KEY)
    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        crypto._fernet.cache_clear()
        call_command("rotate_secrets")
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        crypto._fernet.cache_clear()
        assert crypto.decrypt(Channel.objects.get().secret_ciphertext) == ROUTING_KEY


def test_rotation_without_the_old_key_fails_and_changes_nothing(tenant):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        crypto._fernet.cache_clear()
        save_channel(Channel(tenant=tenant, name="pd", kind="pagerduty"), secret=ROUTING_KEY)
    before = Channel.objects.get().secret_ciphertext
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        crypto._fernet.cache_clear()
        with pytest.raises(CommandError, match="cannot be decrypted"):
            call_command("rotate_secrets")
    assert Channel.objects.get().secret_ciphertext == before


def test_rotation_also_re_encrypts_drill_dsns(tenant):
    from apps.drills.models import Drill, TargetKind
    from apps.drills.services import save_drill

    dsn = "postgresql://ops:s3cret@db.internal:5432/billing"
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        crypto._fernet.cache_clear()
        save_drill(
            Drill(tenant=tenant, name="billing", kind="backup_restore", target=TargetKind.EXTERNAL),
            dsn=dsn,
        )
    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        crypto._fernet.cache_clear()
        call_command("rotate_secrets")
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        crypto._fernet.cache_clear()
        assert "password=s3cret" in crypto.decrypt(Drill.objects.get().dsn_ciphertext)

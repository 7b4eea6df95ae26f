"""What a watch's chat message says in each chat: a job's name stays text, never a ping of the
whole channel or a link that shows one thing and opens another."""

import re

import pytest
from django.utils import timezone

from aquadash import notifications
from aquadash.models import Delivery, Tenant, Watch

JOB_ID = "2c92c0f96b3a5e01016b3c1d2e3f4a5b"
HOSTILE = (
    "@everyone @here <@&123456> <!channel> <users/all> <at>all</at> "
    "[your invoice](https://evil.test) <a href='https://evil.test'>pay</a> **urgent**"
)
LINK = f"http://testserver/t/acme/jobs/{JOB_ID}/"


class Posted:
    """Stands in for the webhook's HTTP session: records what would be posted, answers 200."""

    is_redirect, ok, status_code = False, True, 200

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []

    def post(self, url: str, *, json: dict, **kwargs: object) -> "Posted":
        self.posts.append((url, json))
        return self

    def close(self) -> None:
        pass


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> Posted:
    session = Posted()
    monkeypatch.setattr(notifications, "SESSION", session)
    return session


def chat_message_for(tenant: Tenant, member: object, url: str, posted: Posted) -> dict:
    """The JSON posted to the webhook at `url` when a watch of a hostile-named job ends."""
    tenant.set_webhook_url(url)
    tenant.save()
    now = timezone.now()
    watch = Watch.objects.create(
        tenant=tenant,
        job_id=JOB_ID,
        user=member,
        link=LINK,
        expires_at=now,
        next_check_at=now,
        ended_at=now,
        end=Watch.End.FINAL,
        job_status="completed",
        job_name=HOSTILE,
    )
    delivery = Delivery.objects.create(watch=watch, channel="webhook", recipient="chat")

    assert notifications.deliver.call(delivery.pk) == "sent"
    [(posted_to, message)] = posted.posts
    assert posted_to == url
    return message


def test_discord_pings_nobody_and_shows_links_and_mentions_as_typed(tenant, member, posted):
    message = chat_message_for(
        tenant, member, "https://discord.com/api/webhooks/1234/token-is-a-secret", posted
    )

    content = message["content"]
    assert message["allowed_mentions"] == {"parse": []}
    assert not re.search(r"(?<!\\)@(everyone|here)", content)
    assert not re.search(r"(?<!\\)<@", content)
    assert "[your invoice](" not in content and "**urgent**" not in content
    assert r"\[your invoice\]\(https" in content
    assert f"Open it: {LINK}" in content


def test_teams_shows_links_html_and_mentions_as_typed(tenant, member, posted):
    url = "https://acme.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456"
    message = chat_message_for(tenant, member, url, posted)

    text = message["text"]
    assert "<a " not in text and "<at>" not in text
    assert "[your invoice](" not in text and "**urgent**" not in text
    assert "&#91;your invoice&#93;&#40;https" in text
    assert f"Open it: {LINK}" in text


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T0/B0/" + "x" * 24,
        "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=k&token=t",
    ],
)
def test_slack_and_google_chat_show_links_and_mentions_as_typed(tenant, member, posted, url):
    message = chat_message_for(tenant, member, url, posted)

    text = message["text"]
    assert "<!channel>" not in text and "<users/all>" not in text and "<https" not in text
    assert "&lt;!channel&gt;" in text
    assert f"Open it: {LINK}" in text

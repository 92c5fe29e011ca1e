"""A link a citizen types at the chatbot's photo step is kept only when tracking will take it:
https, or the deployment's own media; anything else is answered at once, not after the
confirmation."""

from __future__ import annotations

import pytest

from services.intake.chatbot.conversation import BAD_PHOTO_LINK
from tests.unit.test_chatbot import at_step


def test_an_https_link_typed_at_the_photo_step_is_kept():
    chat = at_step("foto").says("la foto: https://fotos.example.mx/bache.jpg")
    assert chat.step == "confirmar"
    assert chat.state["media_urls"] == ["https://fotos.example.mx/bache.jpg"]


def test_our_own_media_link_is_kept_even_over_http_in_development():
    chat = at_step("foto").says("http://127.0.0.1:8000/media/" + "3f2a" * 8 + ".jpg")
    assert chat.step == "confirmar" and len(chat.state["media_urls"]) == 1


@pytest.mark.parametrize("link", ["http://otro-sitio.example/bache.jpg",
                                  "https://ana:secreto@fotos.example/a.jpg",
                                  "https://fotos.example/" + "a" * 2100])
def test_a_link_tracking_would_refuse_is_answered_at_the_photo_step(link):
    chat = at_step("foto").says(f"aquí está {link}")
    assert chat.step == "foto" and chat.state["media_urls"] == []
    assert BAD_PHOTO_LINK in chat.said

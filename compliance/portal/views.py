"""Privacy pages of the portal. Requests for a copy, portability or erasure need a fresh second factor."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from compliance.dsr import services
from compliance.dsr.services import STRONG_VERIFICATION, RequestRefused
from compliance.models import PrivacyRequest
from identity.hooks import web_step_up
from identity.net import client_ip

View = Callable[..., HttpResponse | StreamingHttpResponse]

HELP = {
    "access": "A copy of the personal data we hold about you, with what we use it for.",
    "access_categories": "Which kinds of personal data we hold and why (California).",
    "portability": "Your data in machine-readable files you can take to another service.",
    "erasure": "Delete your account and your data. You can cancel for a few days after asking.",
    "rectification": "Correct data that is wrong or incomplete.",
    "restriction": "Keep your data but stop using it while something is checked.",
    "objection": "Stop a use of your data based on our legitimate interests.",
    "opt_out_sale_sharing": "Do not sell or share your personal information.",
    "limit_sensitive": "Limit the use of your sensitive personal information.",
}


def signed_in(view: View) -> View:
    """A portal sign-in (a live session the listener can see and revoke), else the sign-in page."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | StreamingHttpResponse:
        if not request.user.is_authenticated or getattr(request, "auth_session", None) is None:
            return HttpResponseRedirect(f"{reverse('portal:sign-in')}?{urlencode({'next': request.get_full_path()})}")
        return view(request, *args, **kwargs)

    return never_cache(wrapper)


class RequestForm(forms.Form):
    kind = forms.ChoiceField(
        label="What would you like?", choices=PrivacyRequest.Kind.choices, widget=forms.RadioSelect
    )
    details = forms.CharField(
        label="Anything we should know (optional)",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4}),
    )


def _own(request: HttpRequest, request_id: uuid.UUID) -> PrivacyRequest:
    found = PrivacyRequest.objects.for_subject(request.user).filter(pk=request_id).first()
    if found is None:
        raise Http404("no such request")
    return found


@signed_in
def privacy(request: HttpRequest) -> HttpResponse:
    form = RequestForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        kind = form.cleaned_data["kind"]
        verification = "session"
        if kind in STRONG_VERIFICATION:
            detour = web_step_up(request)
            if detour is not None:
                messages.info(request, "Confirm it is you with a second factor, then send the request again.")
                return detour
            verification = "session+mfa"
        try:
            submission = services.submit_request(
                subject=request.user,
                kind=kind,
                channel=PrivacyRequest.Channel.PORTAL,
                actor=request.user,
                details=form.cleaned_data["details"],
                verification=verification,
                ip=client_ip(request),
            )
        except RequestRefused as exc:
            form.add_error(None, str(exc))
        else:
            if submission.created:
                messages.success(request, "We have your request. We will e-mail you a confirmation.")
            else:
                messages.info(request, "You already have an open request of this kind: here it is.")
            return redirect("privacy:request", request_id=submission.request.pk)
    rows = PrivacyRequest.objects.for_subject(request.user).order_by("-received_at")
    return render(
        request, "compliance/portal/privacy.html", {"form": form, "rows": rows, "help": HELP, "section": "privacy"}
    )


@signed_in
def request_detail(request: HttpRequest, request_id: uuid.UUID) -> HttpResponse:
    found = _own(request, request_id)
    return render(request, "compliance/portal/request.html", {"row": found, "section": "privacy"})


@signed_in
@require_POST
def cancel(request: HttpRequest, request_id: uuid.UUID) -> HttpResponse:
    found = _own(request, request_id)
    try:
        services.cancel_request(request=found, actor=request.user)
    except RequestRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "The request is cancelled.")
    return redirect("privacy:request", request_id=found.pk)


@signed_in
def download(request: HttpRequest, request_id: uuid.UUID) -> HttpResponse | StreamingHttpResponse:
    """The export, to its owner, after a fresh second factor, until the link expires."""
    from django.utils import timezone

    from compliance.api.views import stream_export

    found = _own(request, request_id)
    export = getattr(found, "export", None)
    if export is None or export.deleted_at is not None or export.expires_at <= timezone.now():
        raise Http404("no export to download")
    detour = web_step_up(request)
    if detour is not None:
        return detour
    return stream_export(found, export, actor=request.user)

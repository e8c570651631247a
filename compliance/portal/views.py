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

from compliance import consents
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
    purposes = forms.MultipleChoiceField(
        label="Which uses of your data? (objections and opt-outs; optional)",
        choices=[(name, p.label) for name, p in consents.PURPOSES.items()],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="An objection to marketing stops it at once. An objection to recommendations is weighed by "
        "our privacy team; meanwhile we only store your data.",
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
                purposes=form.cleaned_data["purposes"],
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


def notice(request: HttpRequest) -> HttpResponse:
    """The privacy notice every choice is given under (its version and hash are on each record)."""
    return render(
        request,
        "compliance/portal/notice.html",
        {"purposes": consents.PURPOSES.values(), "version": consents.NOTICE_VERSION, "section": "privacy"},
    )


@never_cache
def choices(request: HttpRequest) -> HttpResponse:
    """Privacy choices: one switch per purpose, the "Do Not Sell or Share" and "Limit" controls
    (C-19, C-23), withdrawal in one step and never harder than agreeing (G-06), a two-step opt-in to
    a sale or sharing (C-22), and the opt-out confirmation (C-20). Signed out: how to opt out."""
    gpc = request.headers.get("Sec-GPC", "").strip() == "1"
    if not request.user.is_authenticated or getattr(request, "auth_session", None) is None:
        return render(request, "compliance/portal/choices_public.html", {"gpc": gpc, "section": "privacy"})
    user = request.user
    pending: dict[str, str] = {}
    asked: dict[str, bool] = {}
    if request.method == "POST" and "opt_out_all" in request.POST:
        # "Do Not Sell or Share": one step, and an opt-out on record even if nothing was ever on (C-20).
        consents.opt_out_of_sale_sharing(user, surface="portal", ip=client_ip(request))
        messages.success(request, "Done. We are telling every service we work with; see below when it is honoured.")
        return redirect("privacy:choices")
    if request.method == "POST":
        if "limit_sensitive" in request.POST:
            asked = dict.fromkeys(consents.SENSITIVE, False)
        else:
            asked = {name: request.POST.get(name) == "on" for name in consents.PURPOSES}
        try:
            outcome = consents.record_choices(
                user,
                asked,
                surface="portal",
                interaction_id=request.POST.get("interaction_id", ""),
                confirmation=request.POST.get("confirmation", ""),
                ip=client_ip(request),
            )
        except consents.ChoiceRefused as exc:
            messages.error(request, str(exc))
        else:
            pending = outcome["pending"]
            if not pending:
                if outcome["requests"]:
                    messages.success(
                        request, "Done. We are telling every service we work with; see below when it is honoured."
                    )
                elif outcome["recorded"]:
                    messages.success(request, "Your choices are saved.")
                else:
                    messages.info(request, "Nothing changed.")
                return redirect("privacy:choices")
    from compliance.processing import restriction_in_force

    now = consents.current(user)
    groups = [
        ("sale", "Do Not Sell or Share My Personal Information", consents.SALE_SHARING),
        ("sensitive", "Limit the Use of My Sensitive Personal Information", consents.SENSITIVE),
        (
            "other",
            "Other uses",
            tuple(n for n in consents.PURPOSES if n not in consents.SALE_SHARING + consents.SENSITIVE),
        ),
    ]
    context = {
        "section": "privacy",
        "gpc": gpc,
        "groups": [(anchor, title, [(consents.PURPOSES[n], now[n]) for n in names]) for anchor, title, names in groups],
        "opt_out": consents.last_opt_out(user),
        "restriction": restriction_in_force(user),
        "pending": [consents.PURPOSES[n] for n in pending],
        "confirmation": next(iter(pending.values()), ""),
        "asked": asked,
        "interaction_id": uuid.uuid4().hex,
        "version": consents.NOTICE_VERSION,
    }
    return render(request, "compliance/portal/choices.html", context)

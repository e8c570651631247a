"""Public privacy pages: requests without signing in (C-27) and from authorised agents (C-28).

The views translate forms into ``compliance.dsr.intake`` calls and hold no rules. Every page
answers the same whether or not an account holds an address; the outcome goes by e-mail.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from compliance.dsr import intake as svc
from compliance.dsr.intake import DECLARATION_TEXT, Claims, Document, IntakeRefused
from compliance.models import PrivacyRequest, RequestIntake
from compliance.portal.views import HELP
from identity.net import client_ip

LINK_SESSION_KEY = "privacy:agent-link"
STATUS = {"rate_limited": 429, "not_found": 404, "invalid_state": 409, "code_expired": 410, "too_many_attempts": 429}

LEVEL_HELP = {
    "none": "only the code we e-mail you",
    "reasonable": "the code we e-mail you and your date of birth",
    "reasonably_high": "the code we e-mail you, your date of birth, your country and a signed declaration",
}


def _kind_rows() -> list[dict[str, str]]:
    return [
        {"value": k.value, "label": str(k.label), "help": HELP.get(k.value, ""), "needs": LEVEL_HELP[svc.level_for(k)]}
        for k in PrivacyRequest.Kind
    ]


class ClaimsFields(forms.Form):
    date_of_birth = forms.DateField(
        label="Date of birth",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Needed for every request except the two opt-outs.",
    )
    country = forms.CharField(
        label="Country (two-letter code, e.g. US)",
        required=False,
        max_length=2,
        help_text="Needed for a copy of your data, portability and erasure.",
    )
    declaration_accepted = forms.BooleanField(label=DECLARATION_TEXT, required=False)
    declaration_name = forms.CharField(
        label="Your full name, as your signature",
        required=False,
        max_length=200,
        help_text="Needed with the declaration for a copy of your data, portability and erasure.",
    )

    def claims(self) -> Claims:
        data = self.cleaned_data
        return Claims(
            date_of_birth=data.get("date_of_birth"),
            country=data.get("country") or "",
            declaration_name=data.get("declaration_name") or "",
            declaration_accepted=bool(data.get("declaration_accepted")),
        )


class PublicRequestForm(ClaimsFields):
    field_order = ["email", "kind", "details"]

    email = forms.EmailField(label="Your e-mail address", max_length=254)
    kind = forms.ChoiceField(
        label="What would you like?", choices=PrivacyRequest.Kind.choices, widget=forms.RadioSelect
    )
    details = forms.CharField(
        label="Anything we should know (optional)",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class CodeForm(forms.Form):
    code = forms.CharField(
        label="The code we e-mailed you",
        min_length=6,
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class AgentRequestForm(forms.Form):
    agent_name = forms.CharField(label="Your name (the agent)", max_length=200)
    agent_email = forms.EmailField(label="Your e-mail address (the agent)", max_length=254)
    agent_organisation = forms.CharField(label="Your organisation (optional)", max_length=200, required=False)
    subject_email = forms.EmailField(label="The consumer's e-mail address with us", max_length=254)
    kind = forms.ChoiceField(label="What does the consumer ask for?", choices=PrivacyRequest.Kind.choices)
    details = forms.CharField(
        label="Details (optional)", required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )
    power_of_attorney = forms.BooleanField(
        label="The document is a power of attorney under California Probate Code §§4121-4130", required=False
    )
    document = forms.FileField(
        label="The consumer's signed permission (or the power of attorney)",
        help_text=f"PDF, PNG or JPEG, at most {svc.MAX_DOCUMENT_BYTES // (1024 * 1024)} MB.",
    )

    def clean_document(self) -> Document:
        upload = self.cleaned_data["document"]
        document = Document(content=upload.read(svc.MAX_DOCUMENT_BYTES + 1), size=upload.size or 0)
        try:
            svc.check_document(document)
        except IntakeRefused as exc:
            raise forms.ValidationError(exc.errors.get("document", str(exc))) from exc
        return document


class ConfirmForm(ClaimsFields):
    pass


def _refused(form: forms.Form, exc: IntakeRefused) -> int:
    for name, message in exc.errors.items():
        form.add_error(name if name in form.fields else None, message)
    if not exc.errors:
        form.add_error(None, str(exc))
    return STATUS.get(exc.code, 400)


@never_cache
@require_http_methods(["GET", "POST"])
def public_request(request: HttpRequest) -> HttpResponse:
    form = PublicRequestForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                started = svc.start_public_request(
                    email=form.cleaned_data["email"],
                    kind=form.cleaned_data["kind"],
                    details=form.cleaned_data["details"],
                    claims=form.claims(),
                    channel=PrivacyRequest.Channel.PORTAL,
                    ip=client_ip(request),
                )
            except IntakeRefused as exc:
                status = _refused(form, exc)
            else:
                return redirect("privacy:public-code", intake_id=started.pk)
        else:
            status = 400
    context = {"form": form, "kinds": _kind_rows(), "declaration": DECLARATION_TEXT}
    return render(request, "compliance/portal/public_request.html", context, status=status)


def _code_page(request: HttpRequest, intake_id: uuid.UUID, source: str, done: str, template: str) -> HttpResponse:
    resend = request.method == "POST" and "resend" in request.POST
    form = CodeForm(request.POST if request.method == "POST" and not resend else None)
    status = 200
    notice = ""
    if resend:
        try:
            svc.resend_code(intake_id=intake_id, source=source, ip=client_ip(request))
            notice = "We have sent a new code."
        except IntakeRefused as exc:
            notice, status = str(exc), STATUS.get(exc.code, 400)
    elif request.method == "POST":
        if form.is_valid():
            try:
                svc.verify_code(
                    intake_id=intake_id, code=form.cleaned_data["code"], source=source, ip=client_ip(request)
                )
                return redirect(done)
            except IntakeRefused as exc:
                status = _refused(form, exc)
        else:
            status = 400
    context = {"form": form, "notice": notice, "minutes": svc.CODE_MINUTES}
    return render(request, template, context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def public_code(request: HttpRequest, intake_id: uuid.UUID) -> HttpResponse:
    return _code_page(
        request, intake_id, RequestIntake.Source.PUBLIC, "privacy:public-done", "compliance/portal/public_code.html"
    )


@require_GET
def public_done(request: HttpRequest) -> HttpResponse:
    return render(request, "compliance/portal/public_done.html")


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def agent_request(request: HttpRequest) -> HttpResponse:
    """Uploads stay in memory (never a clear temporary file): the handler must be set before the CSRF
    check reads the body, hence csrf_exempt here and csrf_protect on the view itself (Django's docs)."""
    request.upload_handlers = [svc.BoundedMemoryUploadHandler(request)]
    return _agent_request(request)


@csrf_protect
def _agent_request(request: HttpRequest) -> HttpResponse:
    form = AgentRequestForm(request.POST or None, request.FILES or None) if request.method == "POST" else None
    form = form or AgentRequestForm()
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                started = svc.start_agent_request(
                    agent_name=data["agent_name"],
                    agent_email=data["agent_email"],
                    agent_organisation=data["agent_organisation"],
                    subject_email=data["subject_email"],
                    kind=data["kind"],
                    details=data["details"],
                    power_of_attorney=data["power_of_attorney"],
                    document=data["document"],
                    channel=PrivacyRequest.Channel.PORTAL,
                    ip=client_ip(request),
                )
            except IntakeRefused as exc:
                status = _refused(form, exc)
            else:
                return redirect("privacy:agent-code", intake_id=started.pk)
        else:
            status = 400
    return render(request, "compliance/portal/agent_request.html", {"form": form}, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def agent_code(request: HttpRequest, intake_id: uuid.UUID) -> HttpResponse:
    return _code_page(
        request, intake_id, RequestIntake.Source.AGENT, "privacy:agent-done", "compliance/portal/agent_code.html"
    )


@require_GET
def agent_done(request: HttpRequest) -> HttpResponse:
    return render(request, "compliance/portal/agent_done.html")


@never_cache
@require_GET
def agent_confirm_link(request: HttpRequest, link: str) -> HttpResponse:
    """The consumer's e-mailed link. As the password reset does, the token moves into the session at
    once, so the page that answers has no secret in its address (or in a Referer)."""
    if svc.authorisation_for_link(link) is None:
        return render(request, "compliance/portal/agent_confirm_invalid.html", status=400)
    request.session[LINK_SESSION_KEY] = link
    return redirect("privacy:agent-confirm")


@never_cache
@require_http_methods(["GET", "POST"])
def agent_confirm(request: HttpRequest) -> HttpResponse:
    link = str(request.session.get(LINK_SESSION_KEY, ""))
    found = svc.authorisation_for_link(link) if link else None
    if found is None:
        return render(request, "compliance/portal/agent_confirm_invalid.html", status=400)
    form = ConfirmForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        confirmed = request.POST.get("answer") == "yes"
        if confirmed and not form.is_valid():
            status = 400
        else:
            try:
                svc.answer_agent_request(
                    link=link,
                    confirmed=confirmed,
                    claims=form.claims() if confirmed else None,
                    ip=client_ip(request),
                )
            except IntakeRefused as exc:
                status = _refused(form, exc)
                if exc.code in ("too_many_attempts", "invalid_link"):
                    request.session.pop(LINK_SESSION_KEY, None)
            else:
                request.session.pop(LINK_SESSION_KEY, None)
                return render(request, "compliance/portal/agent_confirm_done.html", {"confirmed": confirmed})
    intake = found.intake
    assert intake is not None  # authorisation_for_link checked it
    context: dict[str, Any] = {
        "form": form,
        "agent_name": str(found.agent_name),
        "agent_organisation": str(found.agent_organisation or ""),
        "kind": PrivacyRequest.Kind(intake.kind).label,
        "level": intake.level,
        "needs": LEVEL_HELP[intake.level],
    }
    return render(request, "compliance/portal/agent_confirm.html", context, status=status)

"""Admin integration: on an fsm model's change page, the machine's events
as buttons (disabled, with the reason, where not allowed now), a payload
box, the row's history, and the machine's Mermaid diagram.

    @admin.register(Order)
    class OrderAdmin(FSMAdminMixin, admin.ModelAdmin):
        pass

Firing needs the change permission on the model; fsm then applies the
machine's own rules (roles, guards, payload schema) as for any client.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import connections, router, transaction
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from fsm_django.exceptions import FsmError


class FSMAdminMixin:
    change_form_template = "fsm_django/change_form.html"
    fsm_history_limit = 20

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        fire = path(
            "<path:object_id>/fsm-fire/<str:event>/",
            self.admin_site.admin_view(self.fsm_fire_view),
            name="%s_%s_fsm_fire" % info,
        )
        return [fire, *super().get_urls()]

    def fsm_fire_view(self, request, object_id, event):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_change_permission(request, obj):
            raise PermissionDenied
        payload = None
        text = request.POST.get("fsm_payload", "").strip()
        try:
            if text:
                payload = json.loads(text)
            using = router.db_for_write(self.model, instance=obj)
            with transaction.atomic(using=using):
                # The history row's actor: who pressed the button.
                with connections[using].cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_catalog.set_config('fsm.actor', %s, true)",
                        [request.user.get_username()],
                    )
                state = obj.fire(event, payload=payload, using=using)
        except json.JSONDecodeError as error:
            messages.error(request, f"The payload is not JSON: {error}")
        except FsmError as error:
            messages.error(request, f"Refused {event} ({error.sqlstate}): {error.message}")
        else:
            messages.success(request, f"Fired {event}: now {state}")
        info = self.model._meta.app_label, self.model._meta.model_name
        return HttpResponseRedirect(reverse("admin:%s_%s_change" % info, args=[obj.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, object_id)
        if obj is not None:
            extra_context.update(
                fsm_events=obj.available_events(),
                fsm_history=[
                    (h, "" if h.payload is None else json.dumps(h.payload))
                    for h in obj.history(limit=self.fsm_history_limit)
                ],
                fsm_mermaid=self.fsm_mermaid(obj),
                fsm_can_fire=self.has_change_permission(request, obj),
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def fsm_mermaid(self, obj) -> str | None:
        """The Mermaid diagram of the machine bound to the model's state
        field."""
        using = router.db_for_read(self.model, instance=obj)
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT fsm.to_mermaid(b.machine) FROM fsm.bindings b "
                "WHERE b.tbl OPERATOR(pg_catalog.=) %s::pg_catalog.regclass AND b.col = %s",
                [connection.ops.quote_name(self.model._meta.db_table), obj._fsm_column(None)],
            )
            row = cursor.fetchone()
        return row[0] if row else None

from django.contrib import admin

from fsm_django.admin import FSMAdminMixin
from shop.models import Order


@admin.register(Order)
class OrderAdmin(FSMAdminMixin, admin.ModelAdmin):
    pass

"""Models declared with django-fsm-2, using each feature the converter
reads (shaped after django-fsm-2's own test models)."""

from django.db import models
from django_fsm_log.decorators import fsm_log_by, fsm_log_description
from django_fsm import GET_STATE, RETURN_VALUE, FSMField, FSMIntegerField, transition


def has_stock(instance):
    return True


def is_editor(instance, user):
    return True


class Article(models.Model):
    state = FSMField(
        default="draft",
        protected=True,
        choices=[("draft", "Draft"), ("review", "Review"), ("published", "Published"),
                 ("archived", "Archived"), ("trash", "Trash")],
    )

    @transition(field=state, source="draft", target="review", custom={"label": "Submit"})
    def submit(self):
        pass

    @transition(field=state, source=["review"], target=RETURN_VALUE("published", "draft"))
    def decide(self):
        return "published"

    @transition(field=state, source="published", target=GET_STATE(lambda self: "archived", states=["archived"]))
    def archive(self):
        pass

    @transition(field=state, source="review", target=GET_STATE(lambda self: "draft"))
    def bounce(self):
        pass

    @transition(field=state, source="*", target="trash", permission="legacy.delete_article")
    def remove(self):
        pass

    @transition(field=state, source="+", target="draft", conditions=[has_stock])
    def reset(self):
        pass

    @transition(field=state, source="draft", target=None)
    def touch(self):
        pass

    @transition(field=state, source="review", target="published", on_error="draft", permission=is_editor)
    def publish(self):
        pass

    @transition(field=state, source="archived", target="published")
    @transition(field=state, source="trash", target="draft")
    def restore(self):
        pass


class Ticket(models.Model):
    status = FSMIntegerField(default=0, choices=[(0, "open"), (1, "closed"), (2, "void"), (3, "merged")])

    @transition(field=status, source=[0, 2], target=1)
    def close(self):
        pass

    @transition(field=status, source=1, target=0)
    def reopen(self):
        pass

    @transition(field=status, source=0, target=2)
    def void(self):
        pass

    @transition(field=status, source=1, target=3)
    def merge(self):
        pass


class Plain(models.Model):
    name = models.TextField()


class Report(models.Model):
    """Two state fields, both logged by django-fsm-log (`by`, description)."""

    state = FSMField(default="draft", choices=[("draft", "Draft"), ("sent", "Sent"), ("filed", "Filed")])
    review = FSMField(default="pending", choices=[("pending", "Pending"), ("approved", "Approved")])

    @fsm_log_by
    @fsm_log_description
    @transition(field=state, source="draft", target="sent")
    def send(self, by=None, description=None):
        pass

    @fsm_log_by
    @transition(field=state, source="sent", target="filed")
    def file(self, by=None):
        pass

    @fsm_log_by
    @transition(field=review, source="pending", target="approved")
    def approve(self, by=None):
        pass

"""RapidNetDistiller: DeiT hard distillation with a frozen teacher that never trains, never
leaves eval mode and never enters the student's state dict."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from rapidnet_mm.models import RapidNetDistiller
from rapidnet_mm.models.distillation import MissingTeacherError, teacher_setup_problem
from cls_helpers import NUM_CLASSES, TINY_TEACHER, make_teacher_checkpoint

pytestmark = pytest.mark.core


def build(teacher_ckpt, distillation=True, num_classes=NUM_CLASSES):
    torch.manual_seed(0)
    return RapidNetDistiller(
        backbone=dict(type='RapidNet', arch='ti'),
        head=dict(type='RapidNetClsHead', arch='ti', num_classes=num_classes,
                  distillation=distillation),
        teacher=dict(arch=TINY_TEACHER, checkpoint=teacher_ckpt))


def batch(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 3, 64, 64, generator=g)
    labels = [1, 3, 0, 2][:n]
    return inputs, [DataSample().set_gt_label(label) for label in labels], torch.tensor(labels)


@pytest.fixture(scope='module')
def teacher_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('teacher') / 'teacher.pth'
    make_teacher_checkpoint(str(path))
    return str(path)


def test_teacher_is_frozen_in_eval_and_outside_the_state_dict(teacher_file):
    model = build(teacher_file).train()
    assert model.teacher is None  # built by the first training step, not before
    keys_before = set(model.state_dict())
    inputs, samples, _ = batch()
    losses = model.loss(inputs, samples)
    teacher = model.teacher
    assert teacher is not None and not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert model.head.dist_head.weight.grad.abs().sum() > 0  # the student learns from it
    model.train()
    assert not teacher.training
    assert set(model.state_dict()) == keys_before  # nothing of the teacher is saved
    assert not any(p is q for p in model.parameters() for q in teacher.parameters())
    assert copy.deepcopy(model).teacher is teacher  # EMA copies share, never duplicate, it


def test_losses_are_deit_hard_distillation(teacher_file):
    model = build(teacher_file).train()
    inputs, samples, labels = batch(4, seed=1)
    losses = model.loss(inputs, samples)
    with torch.no_grad():
        teacher_labels = model.teacher(inputs).argmax(1)
    cls_score, dist_score = model.head.both_logits(model.extract_feat(inputs))
    torch.testing.assert_close(losses['loss'], 0.5 * F.cross_entropy(cls_score, labels))
    torch.testing.assert_close(losses['loss_distill'],
                               0.5 * F.cross_entropy(dist_score, teacher_labels))


def test_missing_teacher_stops_the_first_step():
    model = build(None).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs, samples, _ = batch()
    with pytest.raises(MissingTeacherError, match='model.teacher.checkpoint'):
        model.loss(inputs, samples)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_teacher_setup_problem_names_the_setting(tmp_path):
    cfg = dict(type='RapidNetDistiller', head=dict(distillation=True), teacher=dict())
    assert 'model.teacher.checkpoint' in teacher_setup_problem(cfg)
    cfg['teacher'] = dict(checkpoint=str(tmp_path / 'nope.pth'))
    assert teacher_setup_problem(cfg).startswith('teacher checkpoint not found')
    cfg['head'] = dict(distillation=False)
    assert teacher_setup_problem(cfg) is None
    assert teacher_setup_problem(dict(type='ImageClassifier')) is None


def test_teacher_of_the_wrong_shape_is_refused(tmp_path):
    path = tmp_path / 'teacher1000.pth'
    import timm
    torch.save({'model': timm.create_model(TINY_TEACHER, num_classes=1000).state_dict()}, path)
    model = build(str(path)).train()
    inputs, samples, _ = batch()
    with pytest.raises(ValueError, match='does not fit'):
        model.loss(inputs, samples)


def test_without_distillation_no_teacher_is_accepted(teacher_file):
    with pytest.raises(ValueError, match='would be ignored'):
        build(teacher_file, distillation=False)
    model = build(None, distillation=False).train()
    inputs, samples, labels = batch()
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss'} and model.teacher is None
    logits = model.head(model.extract_feat(inputs))
    torch.testing.assert_close(losses['loss'], F.cross_entropy(logits, labels))


def test_trained_weights_load_for_evaluation_without_teacher(teacher_file):
    trained = build(teacher_file).train()
    inputs, samples, _ = batch()
    trained.loss(inputs, samples)  # builds the teacher, updates BN statistics
    evaluator = build(None).eval()
    evaluator.load_state_dict(trained.state_dict(), strict=True)
    trained.eval()
    with torch.no_grad():
        torch.testing.assert_close(evaluator(inputs, mode='tensor'), trained(inputs, mode='tensor'))
    assert evaluator.teacher is None

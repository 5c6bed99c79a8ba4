// OpenCV helpers for camera apps (header-only: the app links OpenCV, the SDK does not):
// the official letterbox on a cv::Mat, and poses drawn onto a frame.
#pragma once

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <string>

#include "kapao/letterbox.hpp"
#include "kapao/postproc.hpp"

namespace kapao {

// Letterboxes a BGR (or gray / BGRA) uint8 frame into `out` (reused across frames), pixel for
// pixel as kapao_edge.data.letterbox: bilinear resize, grey (114) padding. `geometry` says how.
inline Status letterbox(const cv::Mat& frame, ImageSize target, bool auto_pad, cv::Mat& out,
                        LetterboxGeometry& geometry, int stride = 64, bool scaleup = true) {
    if (frame.empty() || frame.depth() != CV_8U ||
        (frame.channels() != 1 && frame.channels() != 3 && frame.channels() != 4)) {
        return Status::Error("letterbox expects a non-empty uint8 image with 1, 3 or 4 channels");
    }
    cv::Mat bgr = frame;
    if (frame.channels() == 1) {
        cv::cvtColor(frame, bgr, cv::COLOR_GRAY2BGR);
    } else if (frame.channels() == 4) {
        cv::cvtColor(frame, bgr, cv::COLOR_BGRA2BGR);
    }
    if (Status status = letterbox_geometry({bgr.rows, bgr.cols}, target, stride, auto_pad, scaleup, geometry);
        !status) {
        return status;
    }
    out.create(geometry.input.height, geometry.input.width, CV_8UC3);
    const cv::Scalar grey(114, 114, 114);
    // Padding bands only; the centre is written by the resize (or copy) below.
    out.rowRange(0, geometry.top).setTo(grey);
    out.rowRange(geometry.input.height - geometry.bottom, geometry.input.height).setTo(grey);
    out.colRange(0, geometry.left).setTo(grey);
    out.colRange(geometry.input.width - geometry.right, geometry.input.width).setTo(grey);
    cv::Mat centre = out(cv::Rect(geometry.left, geometry.top, geometry.resized.width, geometry.resized.height));
    if (geometry.resized.height == bgr.rows && geometry.resized.width == bgr.cols) {
        bgr.copyTo(centre);
    } else {
        cv::resize(bgr, centre, centre.size(), 0.0, 0.0, cv::INTER_LINEAR);
    }
    return Status();
}

// Person boxes, keypoints above `min_conf` ... and, for the 17 COCO keypoints, the skeleton.
inline void draw_poses(cv::Mat& image, const Poses& poses, float min_conf = 0.0f) {
    // COCO limbs (keypoint index pairs): face, arms, torso, legs.
    static const int coco_limbs[][2] = {{0, 1}, {0, 2}, {1, 3}, {2, 4}, {5, 6}, {5, 7}, {7, 9},
                                        {6, 8}, {8, 10}, {5, 11}, {6, 12}, {11, 12}, {11, 13},
                                        {13, 15}, {12, 14}, {14, 16}};
    const std::size_t K = poses.num_keypoints;
    for (std::size_t p = 0; p < poses.num_poses; ++p) {
        const float* box = &poses.boxes[4 * p];
        cv::rectangle(image, cv::Point2f(box[0], box[1]), cv::Point2f(box[2], box[3]),
                      cv::Scalar(255, 160, 0), 2);
        cv::putText(image, cv::format("%.2f", static_cast<double>(poses.scores[p])),
                    cv::Point2f(box[0], box[1] - 4.0f), cv::FONT_HERSHEY_SIMPLEX, 0.5,
                    cv::Scalar(255, 160, 0), 1);
        const float* kps = &poses.keypoints[p * K * 3];  // (K, 3): x, y, conf
        if (K == 17) {
            for (const auto& limb : coco_limbs) {
                const float* a = kps + 3 * limb[0];
                const float* b = kps + 3 * limb[1];
                cv::line(image, cv::Point2f(a[0], a[1]), cv::Point2f(b[0], b[1]), cv::Scalar(0, 200, 255), 2);
            }
        }
        for (std::size_t k = 0; k < K; ++k) {
            const float* kp = kps + 3 * k;
            if (kp[2] >= min_conf) {
                // Fused keypoints (conf > 0, from a keypoint object) green, regressed ones red.
                cv::circle(image, cv::Point2f(kp[0], kp[1]), 3,
                           kp[2] > 0.0f ? cv::Scalar(0, 220, 0) : cv::Scalar(0, 0, 230), cv::FILLED);
            }
        }
    }
}

}  // namespace kapao

"""The chapters written to the textbook-page conventions (CONTRIBUTING.md, "The textbook page").

``tests/test_textbook_page.py`` checks their source and ``tests/test_book_pages.py`` their built pages; the list
grows as chapters are converted (add yours here when it is done).
"""

TEXTBOOK_CHAPTERS = ["01_preprocessing", "02_batch_normalization", "03_cnn_visualization", "04_localization",
                     "05_pose_estimation", "06_weakly_supervised_localization", "07_gradient_saliency",
                     "08_perturbation_and_perception",
                     "09_evaluating_explanations"]
